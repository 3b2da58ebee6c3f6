"""Request builders: how the load generator speaks one wire protocol.

A builder is a piece of Lua for wrk defining the functions bench/driver.lua calls (b_check,
b_pay or b_reserve/b_commit, b_parse; see the driver's header), plus whether the protocol pays
in one step or two. To benchmark another protocol, write a builder returning
RequestBuilder(name, lua, two_phase=...) and give the runner a Target for it; nothing else
changes. Values put into Lua go through `lua_string`.
"""

import base64
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestBuilder:
    """One protocol's requests and answers, in wrk's Lua."""

    name: str
    lua: str
    two_phase: bool


def lua_string(value: str) -> str:
    """A Lua string literal."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def payme(path: str, *, login: str, password: str, account_field: str = "code") -> RequestBuilder:
    """Payme Merchant API (JSON-RPC over POST): CheckPerformTransaction; CreateTransaction then
    PerformTransaction. The JSON-RPC id carries the sequence number."""
    auth = "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()
    lua = f"""
local PATH = {lua_string(path)}
local HEADERS = {{["Content-Type"] = "application/json", ["Authorization"] = {lua_string(auth)}}}
local FIELD = {lua_string(account_field)}

local function rpc(n, method, params)
   return wrk.format("POST", PATH, HEADERS, string.format(
      '{{"jsonrpc":"2.0","id":%d,"method":"%s","params":%s}}', n, method, params))
end

function b_check(n, code, amount)
   return rpc(n, "CheckPerformTransaction",
      string.format('{{"amount":%d,"account":{{"%s":"%s"}}}}', amount, FIELD, code))
end

function b_reserve(n, code, amount)
   return rpc(n, "CreateTransaction", string.format(
      '{{"id":"%s","time":%d,"amount":%d,"account":{{"%s":"%s"}}}}',
      txn(n), os.time() * 1000, amount, FIELD, code))
end

function b_commit(n, _code, _amount)
   return rpc(n, "PerformTransaction", string.format('{{"id":"%s"}}', txn(n)))
end

function b_parse(status, body)
   local n = tonumber(string.match(body, '"id":%s*(%d+)'))
   local step = nil
   if string.find(body, '"allow"', 1, true) then
      step = "check"
   elseif string.find(body, '"perform_time"', 1, true) then
      step = "commit"
   elseif string.find(body, '"create_time"', 1, true) then
      step = "reserve"
   end
   local good = status == 200 and step ~= nil and not string.find(body, '"error"', 1, true)
   return n, step, good
end
"""
    return RequestBuilder(f"payme:{path}", lua, two_phase=True)


def bare(*, two_phase: bool) -> RequestBuilder:
    """The bare reference's own minimal wire (bench/bare.py): GET with the number echoed."""
    lua = """
function b_check(n, code, _amount)
   return wrk.format("GET", "/check?n=" .. n .. "&code=" .. code)
end

function b_pay(n, code, amount)
   local query = "n=" .. n .. "&id=" .. txn(n) .. "&code=" .. code .. "&amount=" .. amount
   return wrk.format("GET", "/pay?" .. query)
end

function b_reserve(n, code, amount)
   local query = "n=" .. n .. "&id=" .. txn(n) .. "&code=" .. code .. "&amount=" .. amount
   return wrk.format("GET", "/reserve?" .. query)
end

function b_commit(n, _code, _amount)
   return wrk.format("GET", "/perform?n=" .. n .. "&id=" .. txn(n))
end

function b_parse(status, body)
   local n = tonumber(string.match(body, '"n":(%d+)'))
   local step = string.match(body, '"op":"(%a+)"')
   return n, step, status == 200 and string.find(body, '"ok":true', 1, true) ~= nil
end
"""
    return RequestBuilder("bare-2phase" if two_phase else "bare", lua, two_phase=two_phase)


# OSMP's txn_id is digits only: the run's DIGITS (a fixed-width number unique to the
# measurement) followed by the sequence number, which the answer's <osmp_txn_id> then echoes.
_OSMP_COMMON = """
local TXN_DATE = os.date("%Y%m%d%H%M%S")

function otxn(n)
   return DIGITS .. n
end

local function osmp_sum(amount)
   return string.format("%d.%02d", math.floor(amount / 100), amount % 100)
end

function b_check(n, code, amount)
   return wrk.format("GET", PATH .. "?command=check&txn_id=" .. otxn(n) .. "&account=" .. code
      .. "&sum=" .. osmp_sum(amount), HEADERS)
end

-- Deterministic per n (TXN_DATE is fixed per run), so a resend is the first request again.
function b_pay(n, code, amount)
   return wrk.format("GET", PATH .. "?command=pay&txn_id=" .. otxn(n) .. "&txn_date=" .. TXN_DATE
      .. "&account=" .. code .. "&sum=" .. osmp_sum(amount), HEADERS)
end

function b_parse(status, body)
   local echoed = string.match(body, "<osmp_txn_id>(%d+)</osmp_txn_id>")
   local n = nil
   if echoed ~= nil and string.sub(echoed, 1, #DIGITS) == DIGITS then
      n = tonumber(string.sub(echoed, #DIGITS + 1))
   end
   local step = nil
   if string.find(body, "<prv_txn>", 1, true) then
      step = "pay"
   elseif string.find(body, "<fields>", 1, true) then
      step = "check"
   end
   local good = status == 200 and step ~= nil and string.find(body, "<result>0</result>", 1, true) ~= nil
   return n, step, good
end
"""


def osmp(path: str, *, login: str | None = None, password: str | None = None) -> RequestBuilder:
    """OSMP (GET, XML answers): command=check, and command=pay in one step; Basic credentials
    when given."""
    headers = "{}"
    if password is not None:
        auth = "Basic " + base64.b64encode(f"{login or ''}:{password}".encode()).decode()
        headers = f'{{["Authorization"] = {lua_string(auth)}}}'
    lua = f"local PATH = {lua_string(path)}\nlocal HEADERS = {headers}\n{_OSMP_COMMON}"
    return RequestBuilder(f"osmp:{path}", lua, two_phase=False)
