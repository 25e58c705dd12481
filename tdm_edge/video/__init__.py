"""Stage 5: the real-time camera and video loop (``tdm-edge run``), in jetson-inference's URI conventions.

``sources`` (URIs -> OpenCV captures, a capture thread keeping the newest frame), ``outputs`` (window, video file,
image folder), ``overlay`` (labels, status, token map), ``tokens`` (what happened to every patch in every stage),
``loop`` (the main loop), ``commands`` (the subcommand). OpenCV is imported only when a loop runs.
"""
