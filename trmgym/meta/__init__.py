"""Meta-learning: MAML / first-order MAML with torch.func, test-time training, few-shot transfer."""
