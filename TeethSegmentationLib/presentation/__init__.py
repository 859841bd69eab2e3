"""Pictures and the demo: slice previews, offscreen 3D renders, the demo case."""
