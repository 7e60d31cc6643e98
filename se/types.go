package se

// Activation is the nonlinearity between the two layers of an SE block's excitation.
type Activation int

const (
	// ReLU is max(0, x), as in the original SE networks and MobileNetV3.
	ReLU Activation = iota
	// SiLU is x * sigmoid(x), as in EfficientNet.
	SiLU
)

// String returns the activation's name as it appears in config, JSON and tables: "relu" or "silu".
func (a Activation) String() string {
	switch a {
	case ReLU:
		return "relu"
	case SiLU:
		return "silu"
	}
	return "unknown"
}

// GateKind is the squashing function that turns the excitation into gates in [0, 1].
type GateKind int

const (
	// Sigmoid is 1 / (1 + exp(-x)).
	Sigmoid GateKind = iota
	// HardSigmoid is max(0, min(1, alpha*x + beta)); PyTorch's hardsigmoid is alpha = 1/6, beta = 0.5.
	HardSigmoid
)

// String returns the gate's name as it appears in JSON and tables: "sigmoid" or "hard_sigmoid".
func (g GateKind) String() string {
	switch g {
	case Sigmoid:
		return "sigmoid"
	case HardSigmoid:
		return "hard_sigmoid"
	}
	return "unknown"
}

// Block holds the weights of one SE block. The excitation is
//
//	gates = gate(W2 * act(W1 * z + B1) + B2)
//
// where z is the squeezed (globally average-pooled) input, one value per channel.
type Block struct {
	// Channels is C, the number of channels of the block's input and gates.
	Channels int
	// Hidden is the bottleneck width, C/r.
	Hidden int
	// W1 is Hidden x Channels, row-major: W1[j*Channels+c].
	W1 []float32
	// B1 has Hidden values.
	B1 []float32
	// W2 is Channels x Hidden, row-major: W2[c*Hidden+j].
	W2 []float32
	// B2 has Channels values.
	B2 []float32
	// Act is the activation between the two layers.
	Act Activation
	// Gate is the final squashing function.
	Gate GateKind
	// Alpha and Beta parameterize HardSigmoid; unused for Sigmoid.
	Alpha, Beta float32
}
