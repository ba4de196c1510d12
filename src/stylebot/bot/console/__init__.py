"""The console front end: a REPL and the scripted demo."""
