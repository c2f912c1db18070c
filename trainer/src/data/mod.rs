//! Reading dataset rows, turning them into tokenised samples with masked prompts, and batching.
