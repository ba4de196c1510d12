"""The Telegram front end (python-telegram-bot): the same bot in groups and private chats."""
