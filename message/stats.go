package message

import "github.com/sestream/sestream/se"

// Stats are the statistics of one SE block's gate vector for one frame: mean, std, min, max, entropy,
// effective_channels, top ([[channel, value], ...]), saturated and suppressed. They are se.Stats, so the
// message carries exactly what se.ComputeStats computed, with float32 gate values kept as float32.
type Stats = se.Stats
