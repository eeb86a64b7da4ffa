"""Command line: `xlm-convert` / `python -m conversion` (see `--help`)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback
from collections.abc import Sequence

import xlm
from conversion.parity import (
    BFLOAT16_ATOL,
    BFLOAT16_RTOL,
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    DTYPES,
    KERAS_BACKENDS,
    use_keras_backend,
)

PROG = "xlm-convert"
EXIT_OK, EXIT_PARITY_FAILED, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130

DEFAULT_MODEL = os.path.join(os.path.dirname(os.path.abspath(xlm.__file__)), "data", "default_model")

DESCRIPTION = """\
Convert XLM checkpoints between PyTorch and Keras (and from the original facebookresearch/XLM
format), losslessly, and cross-check that both frameworks compute the same thing.

With no command, runs the small bundled model (trained on English / French / German LibreOffice
help) on masked sentences in both frameworks and checks that they predict the same top tokens, then
converts it from PyTorch to Keras in a temporary directory, runs the parity check on it and prints
the report.
"""

EPILOG = """\
examples:
  xlm-convert                                      # demo on the bundled model
  xlm-convert convert my-model/ my-model-keras/    # PyTorch dir -> Keras dir (tf_model.h5)
  xlm-convert convert my-model-keras/ back/        # Keras dir -> PyTorch dir (model.safetensors)
  xlm-convert from-original mlm_en_2048.pth out/ --codes codes_en
  xlm-convert parity my-model/ my-model-keras/ --json report.json --plot report.png
  xlm-convert parity my-model/ --keras-backend jax --device gpu --dtype bfloat16

exit status: 0 success, 1 parity check failed, 2 error (message on stderr; --debug for the traceback)
"""


def _common(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("output")
    group.add_argument("--quiet", "-q", action="store_true", default=argparse.SUPPRESS,
                       help="no progress bars, only results and errors")
    group.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the full traceback of an error")


def _parity_options(parser: argparse.ArgumentParser, check_flag: bool) -> None:
    group = parser.add_argument_group("parity check")
    if check_flag:
        group.add_argument("--check", action="store_true",
                           help="after converting, run the parity check (PyTorch side vs Keras side)")
    group.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                       help="where both frameworks run (gpu: full float32 pinned, TF32 off everywhere; default cpu)")
    group.add_argument("--keras-backend", choices=KERAS_BACKENDS, default=None,
                       help="Keras 3 backend the Keras side runs on (default: KERAS_BACKEND, else keras' own "
                            "default, tensorflow); set before keras is imported")
    group.add_argument("--dtype", choices=DTYPES, default="float32",
                       help="float32 (default), or bfloat16: PyTorch under bfloat16 autocast and Keras with the "
                            "mixed_bfloat16 policy, both against the float32 PyTorch reference, with tolerance "
                            f"atol {BFLOAT16_ATOL:g} + rtol {BFLOAT16_RTOL:g} * max|reference| (bfloat16 keeps 8 "
                            "significant bits: measured differences are up to 2e-2 of a tensor's largest "
                            "magnitude for a 12-layer model)")
    group.add_argument("--atol", type=float, default=None,
                       help=f"absolute tolerance (default {DEFAULT_ATOL:g}; {BFLOAT16_ATOL:g} with --dtype bfloat16)")
    group.add_argument("--rtol", type=float, default=None,
                       help=f"tolerance relative to the tensor's largest magnitude (default {DEFAULT_RTOL:g}; "
                            f"{BFLOAT16_RTOL:g} with --dtype bfloat16)")
    group.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    group.add_argument("--plot", metavar="PATH", help="also plot the per-layer differences to a PNG (matplotlib)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(parser)
    commands = parser.add_subparsers(dest="command", metavar="command")

    convert = commands.add_parser(
        "convert", help="convert a PyTorch model directory to Keras, or a Keras one to PyTorch",
        description="Convert a model directory (config.json + weights, ours or transformers') to the other "
                    "framework: model.safetensors / pytorch_model.bin (PyTorch) <-> tf_model.h5 (Keras). "
                    "Tokenizer and other files are copied. The output appears only when complete.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    convert.add_argument("source", help="model directory (or Hugging Face Hub id) to read")
    convert.add_argument("output", help="new directory to write (must not exist, unless --force)")
    convert.add_argument("--to", choices=("keras", "pytorch"),
                         help="target framework (default: the one the source is not in)")
    convert.add_argument("--format", choices=("safetensors", "bin", "h5"),
                         help="target file format (default: safetensors for PyTorch, h5 for Keras)")
    convert.add_argument("--architecture", metavar="NAME",
                         help="model class, e.g. XLMWithLMHeadModel (default: config.json, else the weights)")
    convert.add_argument("--max-shard-size", metavar="SIZE", help="split weights into shards, e.g. 2GB")
    convert.add_argument("--force", action="store_true", help="replace an existing output directory")
    convert.add_argument("--no-check-finite", dest="check_finite", action="store_false",
                         help="convert weights holding NaN or infinite values (refused by default)")
    _parity_options(convert, check_flag=True)
    _common(convert)

    original = commands.add_parser(
        "from-original", help="convert an original facebookresearch/XLM .pth checkpoint to a model directory",
        description="Convert a facebookresearch/XLM checkpoint (.pth with 'model', 'params' and the dictionary) "
                    "into a model directory: config.json, weights, vocab.json, merges.txt, tokenizer config.")
    original.add_argument("checkpoint", help="the .pth file (loaded with weights_only=True)")
    original.add_argument("output", help="new directory to write (must not exist, unless --force)")
    original.add_argument("--codes", metavar="FILE",
                          help="the model's fastBPE codes file, for merges.txt (without it: no tokenizer)")
    original.add_argument("--part", choices=("model", "encoder"),
                          help="which state dict to take (default 'model'; 'encoder' for translation models)")
    original.add_argument("--format", choices=("safetensors", "bin", "h5"), default="safetensors",
                          help="weight file format (default safetensors)")
    original.add_argument("--causal", action=argparse.BooleanOptionalAction, default=None,
                          help="mark the model causal (default: only when trained with CLM steps alone)")
    original.add_argument("--cased", action="store_true",
                          help="the model's text was not lowercased / accent-stripped (tokenizer setting)")
    original.add_argument("--force", action="store_true", help="replace an existing output directory")
    _parity_options(original, check_flag=True)
    _common(original)

    parity = commands.add_parser(
        "parity", help="run our PyTorch and Keras stacks on the same inputs and compare everything",
        description="Load the weights into our PyTorch stack and our Keras stack, run both on tokenised sample "
                    "sentences in several languages and compare the embedding output, every hidden state, "
                    "attention probabilities and head outputs. Exit status 1 when any tensor is off.")
    parity.add_argument("torch_dir", help="model directory the PyTorch stack loads")
    parity.add_argument("keras_dir", nargs="?", help="model directory the Keras stack loads (default: the same)")
    parity.add_argument("--architecture", metavar="NAME", help="model class (default: config.json, else the weights)")
    _parity_options(parity, check_flag=False)
    _common(parity)

    demo = commands.add_parser("demo", help="what running with no command does: fill-mask in both frameworks, "
                                            "then convert the bundled model and check it",
                               description="Fill masked en / fr / de sentences with the bundled model in PyTorch and "
                                           "in Keras (same top-k tokens required), then convert it PyTorch -> Keras "
                                           "into a temporary directory (or --keep DIR) and run the parity check.")
    demo.add_argument("--keep", metavar="DIR", help="write the Keras directory here instead of a temporary one")
    _parity_options(demo, check_flag=False)
    _common(demo)
    return parser


def _report(report, args: argparse.Namespace) -> int:
    print(report.table())
    if args.json:
        print(f"wrote {report.save_json(args.json)}")
    if args.plot:
        print(f"wrote {report.plot(args.plot)}")
    return EXIT_OK if report.passed else EXIT_PARITY_FAILED


def _parity(torch_dir: str, keras_dir: str | None, args: argparse.Namespace, architecture: str | None = None) -> int:
    from conversion.parity import run_parity

    report = run_parity(torch_dir, keras_dir, architecture=architecture, device=args.device,
                        atol=args.atol, rtol=args.rtol, dtype=args.dtype, keras_backend=args.keras_backend)
    return _report(report, args)


def _convert(args: argparse.Namespace) -> int:
    from conversion.convert import FRAMEWORK_OF_FORMAT, convert_checkpoint

    result = convert_checkpoint(args.source, args.output, to=args.to, format=args.format,
                                architecture=args.architecture, max_shard_size=args.max_shard_size,
                                force=args.force, quiet=args.quiet, check_finite=args.check_finite)
    print(result.summary())
    if not args.check:
        return EXIT_OK
    torch_dir, keras_dir = result.source, result.output
    if FRAMEWORK_OF_FORMAT[result.output_format] == "pytorch":
        torch_dir, keras_dir = keras_dir, torch_dir
    return _parity(torch_dir, keras_dir, args, result.architecture)


def _from_original(args: argparse.Namespace) -> int:
    from conversion.original import convert_original_checkpoint

    overrides = {} if args.causal is None else {"causal": args.causal}
    output = convert_original_checkpoint(
        args.checkpoint, args.output, args.codes, part=args.part, format=args.format, force=args.force,
        do_lowercase_and_remove_accent=not args.cased, config_overrides=overrides,
    )
    print(f"converted {args.checkpoint} to {output}")
    return _parity(output, None, args) if args.check else EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from conversion.convert import convert_checkpoint
    from conversion.fill_mask_demo import compare_fill_mask

    print(f"bundled model: {DEFAULT_MODEL}")
    use_keras_backend(args.keras_backend)
    fill_mask = compare_fill_mask(DEFAULT_MODEL, atol=DEFAULT_ATOL if args.atol is None else args.atol)
    print(fill_mask.table())
    print()
    with tempfile.TemporaryDirectory(prefix="xlm-convert-") as tmp:
        output = args.keep or os.path.join(tmp, "default_model_keras")
        result = convert_checkpoint(DEFAULT_MODEL, output, to="keras", quiet=args.quiet, force=bool(args.keep))
        print(result.summary())
        status = _parity(DEFAULT_MODEL, output, args, result.architecture)
    return status if fill_mask.passed else EXIT_PARITY_FAILED


def _expected_errors() -> tuple[type[BaseException], ...]:
    from xlm.checkpoint import CheckpointError

    return (CheckpointError, FileNotFoundError, FileExistsError, NotADirectoryError, ValueError, ImportError,
            OSError, RuntimeError)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `xlm-convert` and `python -m conversion`; returns the exit status."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # the demo, with the global options given
        argv = ["demo", *(["--quiet"] if getattr(args, "quiet", False) else []),
                *(["--debug"] if getattr(args, "debug", False) else [])]
        args = parser.parse_args(argv)
    args.quiet = getattr(args, "quiet", False)
    args.debug = getattr(args, "debug", False)
    # The Keras backend is fixed at keras' first import: set it before anything can import keras.
    keras_backend = getattr(args, "keras_backend", None)
    handlers = {"convert": _convert, "from-original": _from_original, "parity": _parity_command, "demo": _demo}
    try:
        use_keras_backend(keras_backend, import_keras=False)
        return handlers[args.command](args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; no partial output was left", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001 - sorted into expected failures and bugs below
        if args.debug or not isinstance(err, _expected_errors()):
            traceback.print_exc()
        if not args.debug:
            print(f"{PROG}: error: {err}", file=sys.stderr)
        return EXIT_ERROR


def _parity_command(args: argparse.Namespace) -> int:
    return _parity(args.torch_dir, args.keras_dir, args, args.architecture)


if __name__ == "__main__":
    sys.exit(main())
