"""LoRA training of styles (diffusers + peft) and its image preparation."""
