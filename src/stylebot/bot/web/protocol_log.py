"""aiohttp's own protocol log, without the visitor's address.

aiohttp answers a request it cannot parse (a bad request line, a header over 8 KB)
itself, before the page's code runs, and logs it at ERROR with a traceback as
"Error handling request from <address>": anyone could fill the operator's log with
their own failures, and each line would store a visitor's address, which the page
promises never to keep. Here a malformed request is the visitor's fault (one INFO line
naming the kind of fault); anything else aiohttp logs keeps its level, without the address.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

__all__ = ["protocol_log"]

#: aiohttp's message (web_protocol.RequestHandler.handle_error); its argument is the peer.
_NAMES_THE_PEER = "Error handling request from %s"


class _AddresslessProtocolLog(logging.LoggerAdapter[logging.Logger]):
    def log(
        self,
        level: int,
        msg: object,
        *args: object,
        exc_info: Any = None,
        stack_info: bool = False,
        stacklevel: int = 1,
        extra: Mapping[str, object] | None = None,
    ) -> None:
        if msg == _NAMES_THE_PEER:
            if isinstance(exc_info, HttpProcessingError):
                # Its class only: the message quotes the visitor's bytes.
                level = min(level, logging.INFO)
                msg, args = "refused a malformed request (%s)", (type(exc_info).__name__,)
                exc_info = None
            else:
                msg, args = "failed to handle a request", ()
        super().log(
            level,
            msg,
            *args,
            exc_info=exc_info,
            stack_info=stack_info,
            stacklevel=stacklevel,
            extra=extra,
        )


def protocol_log() -> logging.LoggerAdapter[logging.Logger]:
    """The logger to give aiohttp's request handler (AppRunner's `logger=`)."""
    return _AddresslessProtocolLog(logging.getLogger("stylebot.bot.web.protocol"), {})
