"""The Jupyter front ends: magics, display, the live widget and the Jupyter server extension."""
