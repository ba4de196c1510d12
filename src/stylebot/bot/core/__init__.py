"""The platform-free bot: commands in, replies out. No discord, telegram, arq or aiosqlite here."""
