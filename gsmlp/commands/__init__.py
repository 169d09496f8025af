"""The subcommands of `gsmlp`.

Each is a module with HELP, DESCRIPTION, add_arguments(parser) and run(args) -> exit status.
"""

# name -> module implementing it
COMMANDS: dict[str, str] = {
    "bench": "gsmlp.commands.bench",
    "build": "gsmlp.commands.build",
    "calibrate": "gsmlp.commands.calibrate",
    "demo": "gsmlp.commands.demo",
    "detect": "gsmlp.commands.detect",
    "eval": "gsmlp.commands.eval",
    "export": "gsmlp.commands.export",
    "info": "gsmlp.commands.info",
    "validate": "gsmlp.commands.validate",
}
