"""The console's words in Russian, English and Kyrgyz.

One table per language (tolem.console.messages), with the same keys in each (a test holds them
to that); a message takes its values by name (`{count}`). Plain tables rather than gettext
catalogues: there is nothing to compile, and the three tables read side by side.
"""

from collections.abc import Callable
from typing import Final

from tolem.console.messages.en import EN
from tolem.console.messages.ky import KY
from tolem.console.messages.ru import RU

# Russian first: the language most operators here work in.
LANGUAGES: Final = (("ru", "Русский"), ("en", "English"), ("ky", "Кыргызча"))
DEFAULT: Final = "ru"

MESSAGES: Final = {"en": EN, "ru": RU, "ky": KY}
_CODES: Final = frozenset(MESSAGES)

Translator = Callable[..., str]


def translator(language: str) -> Translator:
    """`t(key, **values)` in one language."""
    table = MESSAGES[language]

    def t(key: str, **values: object) -> str:
        return table[key].format(**values) if values else table[key]

    return t


def known(language: object) -> str | None:
    """The language code if the console speaks it, else None."""
    return language if isinstance(language, str) and language in _CODES else None


def negotiate(accept_language: str) -> str:
    """The first language of an Accept-Language header that the console speaks (q ignored:
    browsers list them in order of preference), or the default."""
    for part in accept_language.split(","):
        code = part.split(";")[0].strip().lower().split("-")[0]
        if code in _CODES:
            return code
    return DEFAULT
