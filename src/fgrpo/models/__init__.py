"""Model registry, LoRA adapters, and adapter transport."""
