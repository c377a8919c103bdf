"""Style packs (YAML) and their schema."""

from .schema import Pack, PackPrompt, builtin_packs, get_pack, load_pack

__all__ = ["Pack", "PackPrompt", "builtin_packs", "get_pack", "load_pack"]
