"""Bundled robrank plugins: installed as ``robrank_plugins`` and registered through the same ``robrank`` entry-point group as any third-party plugin."""
