"""`qlib-assets serve`: the prediction service of one environment."""

import argparse

ENVIRONMENTS = ("dev", "staging", "prod")


def cmd_serve(args: argparse.Namespace) -> int:
    from qlib_assets.serving.server import run_service
    from qlib_assets.settings import load_settings

    settings = load_settings(env=args.env)
    port = args.port or settings.serving.port(args.env)
    print(
        f"serving {args.env} (alias {settings.serving.alias(args.env)}) on "
        f"http://{settings.serving.host}:{port}",
        flush=True,
    )
    run_service(settings, port)
    return 0


def add_serving_parser(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    serve = commands.add_parser(
        "serve", help="run the prediction service (FastAPI under uvicorn) of an environment"
    )
    serve.add_argument("--env", choices=ENVIRONMENTS, default="dev")
    serve.add_argument("--port", type=int, default=None, help="default: serving.ports[env]")
    serve.set_defaults(func=cmd_serve)
