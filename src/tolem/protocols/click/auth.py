"""Click's request authentication: our service id, and an md5 signature keyed by our secret.

The signature is computed over the parameters exactly as they arrived. Click signs the text it
sent (`1000` and `1000.00` are different signatures), so re-formatting an amount or a time
before hashing would reject genuine requests, or worse, accept a different text than was signed.
"""

import hashlib
import hmac
from collections.abc import Mapping

from tolem.core.model import Provider

PREPARE_ID = "merchant_prepare_id"


def signature(params: Mapping[str, str], secret: str, *, with_prepare_id: bool) -> str:
    """Lowercase hex md5 of click_trans_id, service_id, secret, merchant_trans_id,
    [merchant_prepare_id,] amount, action and sign_time, concatenated as received."""
    parts = [params["click_trans_id"], params["service_id"], secret, params["merchant_trans_id"]]
    if with_prepare_id:
        parts.append(params[PREPARE_ID])
    parts += [params["amount"], params["action"], params["sign_time"]]
    # md5 is not our choice: Click's protocol fixes it, and the secret is what authenticates.
    return hashlib.md5("".join(parts).encode("utf-8")).hexdigest()  # noqa: S324


def _same(received: str, expected: str) -> bool:
    # Bytes, because compare_digest refuses non-ASCII str, and a caller must not make us raise.
    return hmac.compare_digest(received.encode("utf-8"), expected.encode("utf-8"))


def service_matches(provider: Provider, received: str) -> bool:
    """Whether the request names the service id configured for this provider."""
    return provider.service_id is not None and _same(received, provider.service_id)


def signature_matches(provider: Provider, params: Mapping[str, str]) -> bool:
    """Whether sign_string is the signature of `params` under the provider's secret.

    Complete (action 1) is signed with merchant_prepare_id, Prepare (action 0) without. Any
    other action has no published formula: either form is accepted when it can be computed,
    since each proves knowledge of the secret, and the request is then refused as an unknown
    action rather than as forged.
    """
    secret = provider.secret
    if secret is None:
        return False
    received = params["sign_string"].lower()
    action = params["action"]
    forms: list[bool] = []
    if action != "1":
        forms.append(False)
    if action != "0" and PREPARE_ID in params:
        forms.append(True)
    # Every candidate is compared, so the time taken does not depend on which one matched.
    results = [_same(received, signature(params, secret, with_prepare_id=form)) for form in forms]
    return any(results)
