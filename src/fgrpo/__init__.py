"""fgrpo: federated GRPO fine-tuning of reasoning models with FGRPO adaptive aggregation."""

__version__ = "0.1.0"
