"""Pure torch/numpy maths. Nothing here imports mmengine or mmpose."""
