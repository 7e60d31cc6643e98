package se

// scoreGroup8 is scoreGroup for a group of 8 channels (the default group size): the same operations in
// the same order, with the deviations held in locals and no loops or bounds checks in between.
func scoreGroup8(total float64, l, d, z, inv []float64) float64 {
	l, d, z, inv = l[:36], d[:8], z[:8], inv[:8]
	d0, d1, d2, d3, d4, d5, d6, d7 := d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]
	z[0], z[1], z[2], z[3] = d0*inv[0], d1*inv[1], d2*inv[2], d3*inv[3]
	z[4], z[5], z[6], z[7] = d4*inv[4], d5*inv[5], d6*inv[6], d7*inv[7]
	// Row i of l starts at i(i+1)/2; y_i = (even terms) + (odd terms), as in scoreGroup.
	y := l[0] * d0
	total += y * y
	y = l[1]*d0 + l[2]*d1
	total += y * y
	y = (l[3]*d0 + l[5]*d2) + l[4]*d1
	total += y * y
	y = (l[6]*d0 + l[8]*d2) + (l[7]*d1 + l[9]*d3)
	total += y * y
	y = (l[10]*d0 + l[12]*d2 + l[14]*d4) + (l[11]*d1 + l[13]*d3)
	total += y * y
	y = (l[15]*d0 + l[17]*d2 + l[19]*d4) + (l[16]*d1 + l[18]*d3 + l[20]*d5)
	total += y * y
	y = (l[21]*d0 + l[23]*d2 + l[25]*d4 + l[27]*d6) + (l[22]*d1 + l[24]*d3 + l[26]*d5)
	total += y * y
	y = (l[28]*d0 + l[30]*d2 + l[32]*d4 + l[34]*d6) + (l[29]*d1 + l[31]*d3 + l[33]*d5 + l[35]*d7)
	total += y * y
	return total
}

// learnGroup8 is learnGroup for a group of 8 channels: the same operations, unrolled.
func learnGroup8(a, f float64, mean, cov, d []float64) {
	cov, d, mean = cov[:36], d[:8], mean[:8]
	d0, d1, d2, d3, d4, d5, d6, d7 := d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]
	mean[0] += a * d0
	mean[1] += a * d1
	mean[2] += a * d2
	mean[3] += a * d3
	mean[4] += a * d4
	mean[5] += a * d5
	mean[6] += a * d6
	mean[7] += a * d7
	// Row i of cov starts at i(i+1)/2 and gains (f d_i) d_j, j <= i.
	e := f * d0
	cov[0] += e * d0
	e = f * d1
	cov[1] += e * d0
	cov[2] += e * d1
	e = f * d2
	cov[3] += e * d0
	cov[4] += e * d1
	cov[5] += e * d2
	e = f * d3
	cov[6] += e * d0
	cov[7] += e * d1
	cov[8] += e * d2
	cov[9] += e * d3
	e = f * d4
	cov[10] += e * d0
	cov[11] += e * d1
	cov[12] += e * d2
	cov[13] += e * d3
	cov[14] += e * d4
	e = f * d5
	cov[15] += e * d0
	cov[16] += e * d1
	cov[17] += e * d2
	cov[18] += e * d3
	cov[19] += e * d4
	cov[20] += e * d5
	e = f * d6
	cov[21] += e * d0
	cov[22] += e * d1
	cov[23] += e * d2
	cov[24] += e * d3
	cov[25] += e * d4
	cov[26] += e * d5
	cov[27] += e * d6
	e = f * d7
	cov[28] += e * d0
	cov[29] += e * d1
	cov[30] += e * d2
	cov[31] += e * d3
	cov[32] += e * d4
	cov[33] += e * d5
	cov[34] += e * d6
	cov[35] += e * d7
}
