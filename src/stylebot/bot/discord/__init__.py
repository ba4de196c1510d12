"""The Discord front end (discord.py): slash commands, consent views, results with buttons.

Start it through :func:`stylebot.bootstrap.chat_adapters` (``stylebot run`` with
``DISCORD_TOKEN`` set); see ``docs/discord.md`` for setting up the application.
"""
