"""Malformed requests of every parameter: HTTP 200, result 300 (or 4) with a clear comment, and
nothing stored. Never an HTTP 500."""

import pytest

from tests.http.osmp.conftest import TXN_DATE, XML_TYPE, OsmpWorld, refused

BAD_PARAMS = "unreadable parameters (not url-encoded UTF-8)"


async def assert_refused(world: OsmpWorld, reply_text: str, expected: str) -> None:
    assert reply_text == expected
    assert await world.money() == (0, 0, 0)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", refused("", 300, "missing command")),
        ("txn_id=1&account=x&sum=1.00", refused("1", 300, "missing command")),
        ("command=refund&txn_id=5", refused("5", 300, "unknown command")),
        ("command=PAY&txn_id=5", refused("5", 300, "unknown command")),
        ("command=getInfo", refused("", 300, "unknown command")),
        ("command=pay&account=x&sum=1.00&txn_date=" + TXN_DATE, refused("", 300, "missing txn_id")),
        ("command=status", refused("", 300, "missing txn_id")),
        ("command=cancel&txn_id=", refused("", 300, "malformed txn_id (digits only, at most 28)")),
        ("command=pay&txn_id=12a", refused("", 300, "malformed txn_id (digits only, at most 28)")),
        ("command=pay&txn_id=-12", refused("", 300, "malformed txn_id (digits only, at most 28)")),
        ("command=pay&txn_id=" + "1" * 29, refused("", 300, "malformed txn_id (digits only, at most 28)")),
        (
            "command=check&txn_id=1.5&account=x",
            refused("", 300, "malformed txn_id (digits only, at most 28)"),
        ),
        ("command=status&txn_id=7&prv_txn=abc", refused("7", 300, "malformed prv_txn")),
        ("command=pay&txn_id=8&sum=1.00&txn_date=" + TXN_DATE, refused("8", 300, "missing account")),
        ("command=check&txn_id=8", refused("8", 300, "missing account")),
        ("command=pay&txn_id=8&account=" + "1" * 201, refused("8", 4, "malformed account")),
        ("command=pay&txn_id=8&account=", refused("8", 300, "missing sum")),
        ("command=a&command=b", refused("", 300, "parameter 'command' given more than once")),
        ("command=pay&txn_id=9&txn_id=10", refused("", 300, "parameter 'txn_id' given more than once")),
        ("command=check&txn_id=9&account=%FF", refused("", 300, BAD_PARAMS)),
        ("command=check&txn_id=9&account=%C3", refused("", 300, BAD_PARAMS)),
        ("command=check&txn_id=9&account", refused("", 300, BAD_PARAMS)),
        (
            "command=check&txn_id=9&" + "&".join(f"p{n}=1" for n in range(70)),
            refused("", 300, "too many parameters"),
        ),
    ],
)
async def test_malformed_query(world: OsmpWorld, query: str, expected: str) -> None:
    """Each malformed query string is refused with its own comment and changes nothing."""
    reply = await world.kiosk.get(query)
    assert (reply.status, reply.content_type) == (200, XML_TYPE)
    await assert_refused(world, reply.text, expected)


@pytest.mark.parametrize(
    "total",
    ["", "1.001", "-1.00", "+1.00", "1,00", "1e3", "1.", ".5", "01.00", " 1.00", "NaN", "1" * 16, "１.00"],
)
async def test_malformed_sum_on_pay(world: OsmpWorld, total: str) -> None:
    """A sum that is not digits with a dot and at most two decimals is 300: no rounding."""
    reply = await world.kiosk.pay("4001", total)
    await assert_refused(world, reply.text, refused("4001", 300, "malformed sum (dot, at most two decimals)"))


async def test_malformed_sum_on_check(world: OsmpWorld) -> None:
    """check refuses a malformed sum too (a zero one is a lookup)."""
    reply = await world.kiosk.check("4002", "1.234")
    assert reply.text == refused("4002", 300, "malformed sum (dot, at most two decimals)")


@pytest.mark.parametrize(
    ("txn_date", "comment"),
    [
        (None, "missing txn_date"),
        ("", "malformed txn_date (YYYYMMDDHHMMSS)"),
        ("2026112514300", "malformed txn_date (YYYYMMDDHHMMSS)"),
        ("202611251430001", "malformed txn_date (YYYYMMDDHHMMSS)"),
        ("20261325143000", "impossible txn_date"),
        ("30001125143000", "txn_date out of range"),
    ],
)
async def test_bad_txn_date_on_pay(world: OsmpWorld, txn_date: str | None, comment: str) -> None:
    """pay needs a real YYYYMMDDHHMMSS txn_date."""
    reply = await world.kiosk.pay("4010", txn_date=txn_date)
    await assert_refused(world, reply.text, refused("4010", 300, comment))


async def test_parameter_in_query_and_body_is_a_duplicate(world: OsmpWorld) -> None:
    """A POST naming a parameter in both query string and body is refused, not merged."""
    response = await world.kiosk.client.post(
        "/gw/kiosk?txn_id=4020",
        data=world.kiosk.pay_params("4021"),
    )
    await assert_refused(
        world, await response.text(), refused("", 300, "parameter 'txn_id' given more than once")
    )


async def test_non_utf8_body(world: OsmpWorld) -> None:
    """Raw bytes that are not UTF-8 in a form body are 300."""
    body = b"command=check&txn_id=4030&account=\xff\xfe"
    reply = await world.kiosk.post(body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    await assert_refused(world, reply.text, refused("", 300, BAD_PARAMS))


async def test_body_of_another_type(world: OsmpWorld) -> None:
    """A JSON or XML body is not a form: 300."""
    reply = await world.kiosk.post(b"{}", headers={"Content-Type": "application/json"})
    await assert_refused(
        world, reply.text, refused("", 300, "POST body must be application/x-www-form-urlencoded")
    )


async def test_huge_body(world: OsmpWorld) -> None:
    """A body far beyond any real request is refused with 300, not an HTTP error."""
    body = "command=check&account=" + "1" * 100_000
    reply = await world.kiosk.post(body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert (reply.status, reply.content_type) == (200, XML_TYPE)
    await assert_refused(world, reply.text, refused("", 300, "request too large"))


async def test_form_post_without_content_type(world: OsmpWorld) -> None:
    """A POST whose body is a form but carries no Content-Type is still read as a form."""
    body = f"command=check&txn_id=4040&account={world.code}".encode()
    response = await world.kiosk.client.post("/gw/kiosk", data=body, skip_auto_headers=["Content-Type"])
    assert "<result>0</result>" in await response.text()


async def test_plus_and_percent_encoding_are_decoded(world: OsmpWorld) -> None:
    """`+` and %20 in an account are spaces (ignored inside a code), as url-encoding says."""
    code = world.code
    spaced = f"{code[:4]}+{code[4:8]}%20{code[8:]}"
    reply = await world.kiosk.get(f"command=check&txn_id=4050&account={spaced}")
    assert "<result>0</result>" in reply.text


async def test_stray_ampersands_are_ignored(world: OsmpWorld) -> None:
    """Empty fields between or after `&` are not parameters; the request reads as intended."""
    reply = await world.kiosk.get(f"command=check&&txn_id=4060&account={world.code}&")
    assert "<result>0</result>" in reply.text
