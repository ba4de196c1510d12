"""The public verify page (off unless `verify_web_port` is set): see `server`."""

from stylebot.bot.web.server import VerifyWebServer, start_verify_web, verify_web_app

__all__ = ["VerifyWebServer", "start_verify_web", "verify_web_app"]
