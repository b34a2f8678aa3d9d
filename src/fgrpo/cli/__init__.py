"""The `fgrpo` commands: the top layer, which nothing else imports."""
