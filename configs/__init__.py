"""trmgym's Hydra configs, shipped inside the wheel as the package ``trmgym.configs``."""
