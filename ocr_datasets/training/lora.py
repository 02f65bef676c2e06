"""What the LoRA fine-tuning scripts (``finetune_llama_vision.py``, ``finetune_vlm.py``) share:
their command-line arguments and the LoRA configuration."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..options import positive_int

DTYPES = ("bfloat16", "float32")


def script_parser(doc: str, *, batch: str, output: str, model: str, tiny: str) -> argparse.ArgumentParser:
    """A fine-tune script's parser: the first paragraph of its ``doc`` as description, the rest
    as epilog; its ``batch`` folder, ``--output`` folder, and either ``--model`` (a local folder,
    never fetched from the Hub) or ``--tiny`` (what each means to the script: the helps given)."""
    parser = argparse.ArgumentParser(
        description=doc.split("\n\n")[0],
        epilog="\n\n".join(doc.split("\n\n")[1:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("batch_dir", type=Path, help=batch)
    parser.add_argument("--output", type=Path, required=True, help=output)
    base = parser.add_mutually_exclusive_group(required=True)
    base.add_argument("--model", type=Path, help=model)
    base.add_argument("--tiny", action="store_true", help=tiny)
    return parser


def parsed(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments; a tiny model always trains in float32."""
    args = parser.parse_args(argv)
    if args.tiny:
        args.dtype = "float32"
    return args


def add_lora_arguments(parser: argparse.ArgumentParser, *, default_targets: str, adapted: str) -> None:
    """The LoRA group; ``adapted`` says which projections of the language model the targets name."""
    lora = parser.add_argument_group("LoRA")
    lora.add_argument("--lora-r", type=positive_int, default=16, help="rank of the LoRA matrices (default: 16)")
    lora.add_argument("--lora-alpha", type=positive_int, default=32, help="LoRA scaling alpha (default: 32)")
    lora.add_argument("--lora-dropout", type=float, default=0.05, help="dropout on the LoRA input (default: 0.05)")
    lora.add_argument(
        "--lora-targets",
        type=_projection_names,
        default=default_targets,
        help=f"comma-separated projection names adapted in {adapted} (default: {default_targets}); "
        "the vision encoder stays frozen",
    )


def _projection_names(value: str) -> str:
    if not any(name.strip() for name in value.split(",")):
        raise argparse.ArgumentTypeError(f"{value!r} names no projection: give names such as q_proj,v_proj")
    return value


def add_training_arguments(parser: argparse.ArgumentParser, *, dtype_help: str) -> argparse._ArgumentGroup:
    """The training group (returned, for a script's own additions)."""
    training = parser.add_argument_group("training")
    training.add_argument("--epochs", type=float, default=1.0, help="passes over the train split (default: 1)")
    training.add_argument(
        "--max-steps", type=int, default=-1, help="stop after this many optimizer steps; overrides --epochs"
    )
    training.add_argument("--batch-size", type=positive_int, default=1, help="rows per device and step (default: 1)")
    training.add_argument(
        "--gradient-accumulation-steps",
        type=positive_int,
        default=8,
        help="steps whose gradients are summed before an update (default: 8)",
    )
    training.add_argument(
        "--learning-rate", type=float, default=2e-4, help="peak learning rate of AdamW (default: 2e-4)"
    )
    training.add_argument(
        "--max-length",
        type=positive_int,
        default=None,
        help="truncate rows to this many tokens (default: no truncation)",
    )
    training.add_argument("--dtype", choices=DTYPES, default="bfloat16", help=dtype_help)
    training.add_argument(
        "--logging-steps", type=positive_int, default=10, help="log the loss every N steps (default: 10)"
    )
    training.add_argument(
        "--seed", type=int, default=0, help="seed for data order and LoRA initialisation (default: 0)"
    )
    return training


def add_validation_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """The validation group (returned, for a script's own additions)."""
    validation = parser.add_argument_group("validation")
    validation.add_argument(
        "--max-new-tokens", type=positive_int, default=128, help="longest generated answer per line (default: 128)"
    )
    validation.add_argument(
        "--eval-batch-size", type=positive_int, default=4, help="rows generated together (default: 4)"
    )
    return validation


def trainer_arguments(args: argparse.Namespace, config_class: type, **checkpointing_kwargs) -> dict:
    """The keyword arguments of ``config_class`` (transformers' ``TrainingArguments``, or TRL's
    ``SFTConfig`` built on it) that the training options give, with the settings both scripts
    want on any machine; checkpointing (with ``checkpointing_kwargs``, if any) under the name the
    installed transformers gives it."""
    import torch

    # Newer transformers 5 releases call it activation checkpointing and warn on the old name,
    # which older 5.x releases still need.
    fields = config_class.__dataclass_fields__  # type: ignore[attr-defined]
    prefix = "activation" if "activation_checkpointing" in fields else "gradient"
    checkpointing: dict = {f"{prefix}_checkpointing": args.gradient_checkpointing}
    if args.gradient_checkpointing and checkpointing_kwargs:
        checkpointing[f"{prefix}_checkpointing_kwargs"] = checkpointing_kwargs
    return {
        "output_dir": str(args.output / "trainer"),
        "num_train_epochs": args.epochs,
        "max_steps": args.max_steps,
        "per_device_train_batch_size": args.batch_size,
        "gradient_accumulation_steps": args.gradient_accumulation_steps,
        "learning_rate": args.learning_rate,
        "logging_steps": args.logging_steps,
        **checkpointing,
        # Pinning needs an accelerator; on a CPU it only warns.
        "dataloader_pin_memory": torch.cuda.is_available(),
        "save_strategy": "no",
        "report_to": "none",
        "seed": args.seed,
    }


def lora_config(args: argparse.Namespace, language_model: str):
    """peft's ``LoraConfig`` from the LoRA arguments, adapting only the modules under a module named
    by the regex ``language_model``: vision encoders have projections of the same names."""
    from peft import LoraConfig

    targets = "|".join(name.strip() for name in args.lora_targets.split(",") if name.strip())
    return LoraConfig(
        r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        target_modules=rf".*\.({language_model})\..*\.({targets})",
        task_type="CAUSAL_LM",
    )
