"""Document functions of the shapes task (lmms-eval imports this file by path from the task's YAML)."""


def shapes_doc_to_visual(doc):
    """A scene's image, or a clip's video file path (lmms-eval's convention for video tasks)."""
    if doc.get("video"):
        return [doc["video"]]
    return [doc["image"].convert("RGB")]


def shapes_doc_to_text(doc, lmms_eval_specific_kwargs=None):
    """The question alone: the embedded model's word-level vocabulary has no instructions to follow."""
    kwargs = lmms_eval_specific_kwargs or {}
    return f"{kwargs.get('pre_prompt', '')}{doc['question']}{kwargs.get('post_prompt', '')}"


def normalize(answer):
    """Lower case, outer spaces and a final full stop removed; the whole answer must then equal the truth."""
    return " ".join(answer.strip().lower().rstrip(".").split())


def shapes_process_results(doc, results):
    return {"exact_match": float(normalize(results[0]) == doc["answer"])}
