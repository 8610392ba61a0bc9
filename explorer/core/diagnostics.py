"""Diagnostics of the unpruned run, computed after it from its capture (the visual rows of the hidden states
entering every layer, and the view a method pruning at layer K had there):
the per-layer spectra and every method's first-stage scores, the same scores each method would have computed
at the pruning layer. The decoder loop does none of this work.
"""

import torch

from explorer.core import interrupt
from explorer.core.devices import clock, device_of
from explorer.core.stage import At, TokenIndex, method_plan, stage_inputs, unmet_need
from explorer.methods import scoring
from explorer.methods.registry import METHODS


def spectra(visual, groups, cutoff):
    """Per group: the high-pass magnitude map, the radial power spectrum and the high-frequency share of the
    visual tokens entering every layer (entry i = input of layer i; the last = the decoder's output)."""
    out, start = [], 0
    for group in groups:
        per_layer = [z[start:start + group.count] for z in visual]
        start += group.count
        highpass = scoring.highpass_magnitude(torch.stack(per_layer), group.grid, cutoff).cpu()
        out.append({
            "layers": list(range(len(per_layer))),
            "highpass": highpass.tolist(),
            "radial": [scoring.radial_power_spectrum(z, group.grid).tolist() for z in per_layer],
            "highfreq_share": [scoring.highfreq_share(z, group.grid, cutoff) for z in per_layer],
        })
    return out


def reference_scores(model, encoded, settings, capture):
    """Every method's first-stage scores at the unpruned run's pruning layer K, from the capture: the scores
    each method would have computed there (the same StageInputs a pruned run builds)."""
    lm = encoded.family.text_model(model)
    the_plan = method_plan(encoded, settings, len(lm.layers), "none")
    k, index = the_plan.prune_layer, TokenIndex(encoded.inputs_embeds.shape[1], encoded.groups)
    z_ref = list(capture["visual"][the_plan.ref_layer].split([g.count for g in encoded.groups]))
    view = capture["view"]  # what a method pruning at K would have seen there (engine.prefill)
    scores = {}
    for name, method in METHODS.items():
        interrupt.check(f"diagnostics ({name}'s scores)")
        if not method.prunes or unmet_need(name, encoded, k):
            continue  # what this model or layer cannot give
        scores[name] = torch.cat([
            method.score(stage_inputs(name, At(gi, view, index, encoded, z_ref), 0, the_plan.nominal[gi], settings))
            .float().cpu() for gi in range(len(encoded.groups))]).double().tolist()
    return scores


def attach(record, model, encoded, settings):
    """Fill the unpruned record's spectra and reference scores from its capture, then drop the capture."""
    device = device_of(encoded.family.text_model(model))
    start = clock(device)
    with torch.inference_mode():
        record.spectra = spectra(record.capture["visual"], encoded.groups, settings.cutoff)
        record.reference_scores = reference_scores(model, encoded, settings, record.capture)
    record.capture = None
    record.timings_ms["diagnostics"] = (clock(device) - start) * 1e3
