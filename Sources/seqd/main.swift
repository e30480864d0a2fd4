print("seqd")
