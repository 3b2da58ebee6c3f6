"""check: may this account be paid (with this sum)? A masked name, never a balance, nothing stored."""

from tests.http.osmp.conftest import XML_TYPE, OsmpWorld, checked, refused


async def test_check_answers_masked_name(world: OsmpWorld) -> None:
    """A payable code answers 0 with the payer's surname and initial only; nothing is stored."""
    reply = await world.kiosk.check("2001", "150.00")
    assert (reply.status, reply.content_type) == (200, XML_TYPE)
    assert reply.text == checked("2001", "Asanov A.")
    assert await world.money() == (0, 0, 0)


async def test_check_by_form_post(world: OsmpWorld) -> None:
    """check by url-encoded POST answers as by GET."""
    data = {"command": "check", "txn_id": "2002", "account": world.code, "sum": "10.00"}
    assert (await world.kiosk.post(data)).text == checked("2002", "Asanov A.")


async def test_lookup_with_zero_sum_or_without_txn_id(world: OsmpWorld) -> None:
    """A pre-check with txn_id=0&sum=0.00, without a sum, or without txn_id still answers."""
    assert (await world.kiosk.check("0", "0.00")).text == checked("0", "Asanov A.")
    assert (await world.kiosk.check("2003", None)).text == checked("2003", "Asanov A.")
    assert (await world.kiosk.check(None, None)).text == checked("", "Asanov A.")
    assert (await world.kiosk.check(None, "0")).text == checked("", "Asanov A.")
    assert await world.money() == (0, 0, 0)


async def test_check_never_shows_the_balance(world: OsmpWorld) -> None:
    """After a credit, check still answers only the masked name."""
    await world.kiosk.pay("2004", "150.00")
    reply = await world.kiosk.check("2005", "10.00")
    assert reply.text == checked("2005", "Asanov A.")
    assert "150" not in reply.text


async def test_check_applies_limits_only_to_a_real_sum(world: OsmpWorld) -> None:
    """A sum below or above the provider's limits is 241 / 242 at check already."""
    assert (await world.kiosk.check("2010", "9.99")).text == refused("2010", 241, "sum too small")
    assert (await world.kiosk.check("2011", "50000.01")).text == refused("2011", 242, "sum too large")


async def test_check_refusals(world: OsmpWorld) -> None:
    """Bad check digit 4, unknown code 5, blocked account 79."""
    wrong_digit = world.code[:-1] + str((int(world.code[-1]) + 1) % 10)
    assert (await world.kiosk.check("2020", account=wrong_digit)).text == refused(
        "2020", 4, "malformed account"
    )
    assert (await world.kiosk.check("2021", account="OLD-77")).text == refused("2021", 5, "account not found")
    await world.factory.block(world.account_id)
    assert (await world.kiosk.check("2022")).text == refused("2022", 79, "account blocked")


async def test_check_masks_non_latin_names_and_escapes_markup(world: OsmpWorld) -> None:
    """A Cyrillic name is masked and sent as UTF-8; markup in a name is escaped, not injected."""
    _, cyrillic = await world.factory.account("Асанов Асан")
    _, odd = await world.factory.account("<b>&Co</b> Ltd")
    assert (await world.kiosk.check("2030", account=cyrillic)).text == checked("2030", "Асанов А.")
    assert (await world.kiosk.check("2031", account=odd)).text == checked(
        "2031", "&lt;b&gt;&amp;Co&lt;/b&gt; L."
    )
