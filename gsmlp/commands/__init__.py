"""The subcommands of `gsmlp`.

A built command is a module with HELP, DESCRIPTION, add_arguments(parser) and run(args) -> exit status.
A pending one is only named here: it says it is not built and exits with status 2.
"""

# name -> module implementing it
COMMANDS: dict[str, str] = {
    "bench": "gsmlp.commands.bench",
    "build": "gsmlp.commands.build",
    "calibrate": "gsmlp.commands.calibrate",
    "demo": "gsmlp.commands.demo",
    "eval": "gsmlp.commands.eval",
    "export": "gsmlp.commands.export",
    "info": "gsmlp.commands.info",
    "validate": "gsmlp.commands.validate",
}

# name -> one-line summary, for commands not built yet
PENDING: dict[str, str] = {}
