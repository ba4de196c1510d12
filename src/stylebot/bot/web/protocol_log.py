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
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

#: aiohttp's message (web_protocol.RequestHandler.handle_error); its argument is the peer.
_NAMES_THE_PEER = "Error handling request from %s"


class _AddresslessProtocolLog(logging.LoggerAdapter[logging.Logger]):
    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if msg == _NAMES_THE_PEER:
            fault = kwargs.get("exc_info")
            if isinstance(fault, HttpProcessingError):
                # Its class only: the message quotes the visitor's bytes.
                level = min(level, logging.INFO)
                msg, args = "refused a malformed request (%s)", (type(fault).__name__,)
                kwargs["exc_info"] = None
            else:
                msg, args = "failed to handle a request", ()
        super().log(level, msg, *args, **kwargs)


def protocol_log() -> logging.LoggerAdapter[logging.Logger]:
    """The logger to give aiohttp's request handler (AppRunner's `logger=`)."""
    return _AddresslessProtocolLog(logging.getLogger("stylebot.bot.web.protocol"), {})
