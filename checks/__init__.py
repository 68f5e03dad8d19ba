"""gpudoctor's built-in collectors and checks, one module per area.

Installed as `gpudoctor.checks` (see setup.cfg's package_dir); never import it as a
top-level `checks`.
"""
