"""The bundle builder: turns scikit-learn models (our synthetic ESP models, or a data scientist's
own) into verified ONNX bundles. Runs on a data scientist's machine or in CI, never in a well pod."""
