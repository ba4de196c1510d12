"""The console front end: a REPL and the scripted demo."""

from stylebot.bot.console.adapter import HELP, ConsoleAdapter, stdin_lines
from stylebot.bot.console.session import make_sample_images, run_console, run_demo

__all__ = ["HELP", "ConsoleAdapter", "make_sample_images", "run_console", "run_demo", "stdin_lines"]
