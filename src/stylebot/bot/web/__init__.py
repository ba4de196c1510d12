"""The public verify page (off unless `verify_web_port` is set): see `server`."""
