"""Display names: what tables, figures and the CLI call each method and protocol."""

from __future__ import annotations

METHOD_LABELS = {"zero_shot": "Zero-shot", "zero_shot_single": "Zero-shot (1 prompt)", "linear_probe": "Linear probe",
                 "coop": "CoOp", "clip_adapter": "CLIP-Adapter", "tip_adapter": "Tip-Adapter",
                 "tip_adapter_f": "Tip-Adapter-F", "tip_x": "Tip-X", "ape": "APE", "ape_t": "APE-T", "gda": "GDA",
                 "clap": "CLAP", "lp_plus_plus": "LP++"}
PROTOCOL_LABELS = {"clean": "clean (choices on val)", "paper": "paper (official code; test-set selection)"}
