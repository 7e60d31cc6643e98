package model

// MaxInputSide is the largest input height or width, in pixels, that preprocessing makes and configuration
// accepts.
const MaxInputSide = 8192

// InputSize is the model's input height and width in pixels: the input's fixed dimensions, else the size its
// metadata declares (the two must agree when both are given; Load checks), else 0, 0 (the caller's default).
// Every user of the input size (preprocessing, the engines, inspect and bench) takes it from here.
func (m *Model) InputSize() (height, width int) {
	if s := m.Input.Shape; len(s) == 4 && s[2] > 0 && s[3] > 0 {
		return int(s[2]), int(s[3])
	}
	if m.Meta.Height > 0 && m.Meta.Width > 0 {
		return m.Meta.Height, m.Meta.Width
	}
	return 0, 0
}
