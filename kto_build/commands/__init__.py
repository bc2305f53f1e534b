"""Feature commands: each module here exposes ``COMMANDS``, a list of click
commands added to ``kto-build``. Keep their imports light (import heavy
libraries inside the command body)."""
