import Mail

extension SequenceDefinition.Email {
    /// The variant an enrollment gets at this step, nil for a step without variants. A weighted
    /// pick from a hash of the enrollment id and the step whose pick it follows (`variantsOf`, else
    /// its own key): the same on every retry, replica and version of seqd, and independent between
    /// steps, so step 2's split does not mirror step 1's.
    public func variant(for enrollmentID: Int64, stepKey: String) -> SequenceDefinition.Variant? {
        let total = variants.reduce(0) { $0 + $1.weight }
        guard total > 0 else { return nil }
        var point = Int(Self.mixed(stableHash("seqd-variant:\(variantsOf ?? stepKey):\(enrollmentID)")) % UInt64(total))
        for variant in variants {
            if point < variant.weight { return variant }
            point -= variant.weight
        }
        return nil
    }

    /// The variant keyed `key`, for `sequence preview --variant`.
    public func variant(named key: String) -> SequenceDefinition.Variant? {
        variants.first { $0.key == key }
    }

    /// splitmix64's finalizer: FNV-1a alone leaves the low bits of near-identical inputs (ids
    /// differing in the last digit) correlated, and the pick reads them through `%`.
    private static func mixed(_ value: UInt64) -> UInt64 {
        var z = value &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
