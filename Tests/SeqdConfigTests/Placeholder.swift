// Tests for SeqdConfig follow.
