"""The ``kto-build`` commands, by topic: build (run, plan, ls, ...), annotations, quality, docs, maintenance,
schema. ``common`` holds what they share (options, errors, printing), ``internals`` the lazy calls into node
kinds. No module here imports ``kto_build.cli``: the CLI imports them, by name, when a command is used."""
