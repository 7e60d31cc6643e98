package se

import (
	"container/heap"
	"fmt"
)

// Graph is the small, format-independent view of a model graph that SE block discovery works on.
// Package model builds it from an ONNX graph; tests build it by hand.
type Graph struct {
	// Nodes in any order; Discover sorts them topologically.
	Nodes []Node
	// Initializers maps each constant weight tensor's name to its dimensions.
	Initializers map[string][]int64
	// Constants maps small integer constant tensors (initializers or Constant node outputs, such as
	// ReduceMean axes or Reshape shapes) to their values, flattened.
	Constants map[string][]int64
	// Inputs and Outputs are the graph's input and output tensor names (initializers excluded).
	Inputs, Outputs []string
}

// Node is one operator of a Graph.
type Node struct {
	// Name is the node's unique name. Discover reports blocks by their gate node's name.
	Name string
	// OpType is the ONNX operator type, e.g. "Conv", "Sigmoid".
	OpType string
	// Inputs and Outputs are tensor names; an empty input name is an omitted optional input.
	Inputs, Outputs []string
	// Ints holds integer and integer-list attributes (a single int as a one-element slice).
	Ints map[string][]int64
	// Floats holds float attributes.
	Floats map[string]float32
}

// Int returns the integer attribute name, or def when the node does not have it.
func (n *Node) Int(name string, def int64) int64 {
	if v, ok := n.Ints[name]; ok && len(v) == 1 {
		return v[0]
	}
	return def
}

// Float returns the float attribute name, or def when the node does not have it.
func (n *Node) Float(name string, def float32) float32 {
	if v, ok := n.Floats[name]; ok {
		return v
	}
	return def
}

// input returns the node's i-th input, or "" when it has fewer.
func (n *Node) input(i int) string {
	if i < len(n.Inputs) {
		return n.Inputs[i]
	}
	return ""
}

// index is a Graph with its edges resolved: who produces and who consumes each tensor.
type index struct {
	g         *Graph
	order     []int          // node indices in topological order
	position  []int          // position[node index] = place in order
	producer  map[string]int // tensor -> index of the node producing it
	consumers map[string][]int
}

// newIndex resolves g's edges and sorts its nodes topologically, keeping the given order among
// nodes that are ready at the same time. It fails on unnamed or duplicate node names, on a tensor
// produced twice, and on cycles.
func newIndex(g *Graph) (*index, error) {
	ix := &index{
		g:         g,
		producer:  make(map[string]int, len(g.Nodes)),
		consumers: make(map[string][]int, len(g.Nodes)),
	}
	names := make(map[string]bool, len(g.Nodes))
	for i := range g.Nodes {
		n := &g.Nodes[i]
		if n.Name == "" {
			return nil, fmt.Errorf("graph node %d (%s) has no name", i, n.OpType)
		}
		if names[n.Name] {
			return nil, fmt.Errorf("graph has two nodes named %q", n.Name)
		}
		names[n.Name] = true
		for _, t := range n.Outputs {
			if t == "" {
				continue
			}
			if p, dup := ix.producer[t]; dup {
				return nil, fmt.Errorf("graph tensor %q is produced by both %q and %q", t, g.Nodes[p].Name, n.Name)
			}
			ix.producer[t] = i
		}
	}
	// Kahn's algorithm; a node waits only for inputs that some node produces.
	waiting := make([]int, len(g.Nodes))
	for i := range g.Nodes {
		seen := map[string]bool{}
		for _, t := range g.Nodes[i].Inputs {
			if _, ok := ix.producer[t]; ok && t != "" && !seen[t] {
				seen[t] = true
				waiting[i]++
				ix.consumers[t] = append(ix.consumers[t], i)
			}
		}
	}
	ready := &minHeap{}
	for i, w := range waiting {
		if w == 0 {
			heap.Push(ready, i)
		}
	}
	ix.position = make([]int, len(g.Nodes))
	for ready.Len() > 0 {
		i := heap.Pop(ready).(int)
		ix.position[i] = len(ix.order)
		ix.order = append(ix.order, i)
		for _, t := range g.Nodes[i].Outputs {
			for _, c := range ix.consumers[t] {
				waiting[c]--
				if waiting[c] == 0 {
					heap.Push(ready, c)
				}
			}
		}
	}
	if len(ix.order) != len(g.Nodes) {
		for i, w := range waiting {
			if w > 0 {
				return nil, fmt.Errorf("graph has a cycle through node %q", g.Nodes[i].Name)
			}
		}
	}
	return ix, nil
}

// producerOf returns the node that produces tensor t, or nil for graph inputs, initializers and
// unknown tensors.
func (ix *index) producerOf(t string) *Node {
	if i, ok := ix.producer[t]; ok {
		return &ix.g.Nodes[i]
	}
	return nil
}

// minHeap is a heap of node indices, smallest first, so that the topological order keeps the
// graph's own order wherever it is free to.
type minHeap []int

func (h minHeap) Len() int           { return len(h) }
func (h minHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h minHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *minHeap) Push(x any)        { *h = append(*h, x.(int)) }
func (h *minHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
