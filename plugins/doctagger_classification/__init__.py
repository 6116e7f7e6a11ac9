"""First-party task type: text classification (single- or multi-label)."""
