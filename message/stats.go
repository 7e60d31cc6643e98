package message

// Stats are the statistics of one SE block's gate vector s (C values in (0, 1)) for one frame.
// The field set and JSON names match se.Stats.
type Stats struct {
	Mean float64 `json:"mean"`
	// Std is the population standard deviation.
	Std float64 `json:"std"`
	Min float64 `json:"min"`
	Max float64 `json:"max"`
	// Entropy is H(p)/ln C with p = s/sum(s): 1 when attention is spread evenly, 0 on one channel.
	Entropy float64 `json:"entropy"`
	// EffectiveChannels is exp(H(p)).
	EffectiveChannels float64 `json:"effective_channels"`
	// Top is the k largest gates as [channel index, value] pairs, largest first.
	Top [][2]float64 `json:"top"`
	// Saturated is the fraction of gates above 0.9, Suppressed the fraction below 0.1.
	Saturated  float64 `json:"saturated"`
	Suppressed float64 `json:"suppressed"`
}
