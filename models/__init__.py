"""Training, conversion and evaluation of the kiosk's lesion classifier.

Nothing here is imported by the kiosk: the kiosk needs only the runtime and
the committed ``models/lesion/`` (model.tflite + manifest.json). The tools
here need ``models/requirements-train.txt``.
"""
