"""Curiosity: intrinsic rewards (RND, count-based) as modules and Gymnasium wrappers."""
