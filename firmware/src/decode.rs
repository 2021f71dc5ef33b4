//! Names for interruption codes in crash reports.

/// Name of a program-interruption code (PER and transaction bits ignored).
pub fn program_code_name(code: u16) -> &'static str {
    match code & 0x7f {
        0x01 => "operation",
        0x02 => "privileged-operation",
        0x03 => "execute",
        0x04 => "protection",
        0x05 => "addressing",
        0x06 => "specification",
        0x07 => "data",
        0x08 => "fixed-point-overflow",
        0x09 => "fixed-point-divide",
        0x0a => "decimal-overflow",
        0x0b => "decimal-divide",
        0x0c => "HFP-exponent-overflow",
        0x0d => "HFP-exponent-underflow",
        0x0e => "HFP-significance",
        0x0f => "HFP-floating-point-divide",
        0x10 => "segment-translation",
        0x11 => "page-translation",
        0x12 => "translation-specification",
        0x13 => "special-operation",
        0x15 => "operand",
        0x16 => "trace-table",
        0x19 => "vector-processing",
        0x1b => "vector-processing",
        0x1c => "space-switch",
        0x1d => "square-root",
        0x1f => "PC-translation-specification",
        0x20 => "AFX-translation",
        0x21 => "ASX-translation",
        0x22 => "LX-translation",
        0x23 => "EX-translation",
        0x24 => "primary-authority",
        0x25 => "secondary-authority",
        0x26 => "LFX-translation",
        0x27 => "LSX-translation",
        0x28 => "ALET-specification",
        0x29 => "ALEN-translation",
        0x2a => "ALE-sequence",
        0x2b => "ASTE-validity",
        0x2c => "ASTE-sequence",
        0x2d => "extended-authority",
        0x2e => "LSTE-sequence",
        0x2f => "ASTE-instance",
        0x30 => "stack-full",
        0x31 => "stack-empty",
        0x32 => "stack-specification",
        0x33 => "stack-type",
        0x34 => "stack-operation",
        0x38 => "ASCE-type",
        0x39 => "region-first-translation",
        0x3a => "region-second-translation",
        0x3b => "region-third-translation",
        0x40 => "monitor-event",
        0x80 => "PER-event",
        _ => "unknown",
    }
}

/// Whether the translation-exception identification is meaningful.
pub fn program_code_has_teid(code: u16) -> bool {
    matches!(code & 0x7f, 0x04 | 0x10 | 0x11 | 0x38..=0x3b)
}

/// Name of an external-interruption code.
pub fn external_code_name(code: u16) -> &'static str {
    match code {
        0x0040 => "interrupt key",
        0x1004 => "clock comparator",
        0x1005 => "CPU timer",
        0x1201 => "emergency signal",
        0x1202 => "external call",
        0x1407 => "timing alert",
        0x2401 => "service signal",
        0x2603 => "virtio (s390-virtio transport)",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(program_code_name(0x0005), "addressing");
        assert_eq!(program_code_name(0x0085), "addressing");
        assert_eq!(program_code_name(0x0011), "page-translation");
        assert!(program_code_has_teid(0x11) && !program_code_has_teid(0x06));
        assert_eq!(external_code_name(0x2401), "service signal");
        assert_eq!(external_code_name(0x9999), "unknown");
    }
}
