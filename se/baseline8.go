package se

import "math"

// scoreGroups8 is scoreGroup for consecutive groups of 8 channels (the default group size), len(d)/8 of
// them, l holding their packed factors one after the other (36 values each): the same operations in the
// same order, with each group's deviations held in locals and no inner loops or bounds checks.
func scoreGroups8(total float64, l, d, z, inv []float64) float64 {
	for len(d) >= 8 && len(l) >= 36 && len(z) >= 8 && len(inv) >= 8 {
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
		l, d, z, inv = l[36:], d[8:], z[8:], inv[8:]
	}
	return total
}

// learnGroups8 is learnGroup for consecutive groups of 8 channels, len(d)/8 of them, cov holding their
// packed covariances one after the other (36 values each): the same operations, unrolled.
func learnGroups8(a, f float64, mean, cov, d []float64) {
	for len(d) >= 8 && len(cov) >= 36 && len(mean) >= 8 {
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
		mean, cov, d = mean[8:], cov[36:], d[8:]
	}
}

// invertCholesky8 is invertCholesky for a group of 8 channels: the same operations in the same order,
// unrolled, with the factor L in a local array. Element (i, j) of a packed triangle is at i(i+1)/2 + j.
func invertCholesky8(cov, l []float64, scale, keep, ridge float64) {
	cov, l = cov[:36], l[:36]
	var t [36]float64 // L
	var a float64
	if a = scale*cov[0] + ridge; a <= 0 {
		a = ridge
	}
	t[0] = math.Sqrt(a)
	t[1] = (scale * cov[1] * keep) / t[0]
	if a = scale*cov[2] + ridge - t[1]*t[1]; a <= 0 {
		a = ridge
	}
	t[2] = math.Sqrt(a)
	t[3] = (scale * cov[3] * keep) / t[0]
	t[4] = (scale*cov[4]*keep - t[3]*t[1]) / t[2]
	if a = scale*cov[5] + ridge - t[3]*t[3] - t[4]*t[4]; a <= 0 {
		a = ridge
	}
	t[5] = math.Sqrt(a)
	t[6] = (scale * cov[6] * keep) / t[0]
	t[7] = (scale*cov[7]*keep - t[6]*t[1]) / t[2]
	t[8] = (scale*cov[8]*keep - t[6]*t[3] - t[7]*t[4]) / t[5]
	if a = scale*cov[9] + ridge - t[6]*t[6] - t[7]*t[7] - t[8]*t[8]; a <= 0 {
		a = ridge
	}
	t[9] = math.Sqrt(a)
	t[10] = (scale * cov[10] * keep) / t[0]
	t[11] = (scale*cov[11]*keep - t[10]*t[1]) / t[2]
	t[12] = (scale*cov[12]*keep - t[10]*t[3] - t[11]*t[4]) / t[5]
	t[13] = (scale*cov[13]*keep - t[10]*t[6] - t[11]*t[7] - t[12]*t[8]) / t[9]
	if a = scale*cov[14] + ridge - t[10]*t[10] - t[11]*t[11] - t[12]*t[12] - t[13]*t[13]; a <= 0 {
		a = ridge
	}
	t[14] = math.Sqrt(a)
	t[15] = (scale * cov[15] * keep) / t[0]
	t[16] = (scale*cov[16]*keep - t[15]*t[1]) / t[2]
	t[17] = (scale*cov[17]*keep - t[15]*t[3] - t[16]*t[4]) / t[5]
	t[18] = (scale*cov[18]*keep - t[15]*t[6] - t[16]*t[7] - t[17]*t[8]) / t[9]
	t[19] = (scale*cov[19]*keep - t[15]*t[10] - t[16]*t[11] - t[17]*t[12] - t[18]*t[13]) / t[14]
	if a = scale*cov[20] + ridge - t[15]*t[15] - t[16]*t[16] - t[17]*t[17] - t[18]*t[18] - t[19]*t[19]; a <= 0 {
		a = ridge
	}
	t[20] = math.Sqrt(a)
	t[21] = (scale * cov[21] * keep) / t[0]
	t[22] = (scale*cov[22]*keep - t[21]*t[1]) / t[2]
	t[23] = (scale*cov[23]*keep - t[21]*t[3] - t[22]*t[4]) / t[5]
	t[24] = (scale*cov[24]*keep - t[21]*t[6] - t[22]*t[7] - t[23]*t[8]) / t[9]
	t[25] = (scale*cov[25]*keep - t[21]*t[10] - t[22]*t[11] - t[23]*t[12] - t[24]*t[13]) / t[14]
	t[26] = (scale*cov[26]*keep - t[21]*t[15] - t[22]*t[16] - t[23]*t[17] - t[24]*t[18] - t[25]*t[19]) / t[20]
	if a = scale*cov[27] + ridge - t[21]*t[21] - t[22]*t[22] - t[23]*t[23] - t[24]*t[24] - t[25]*t[25] - t[26]*t[26]; a <= 0 {
		a = ridge
	}
	t[27] = math.Sqrt(a)
	t[28] = (scale * cov[28] * keep) / t[0]
	t[29] = (scale*cov[29]*keep - t[28]*t[1]) / t[2]
	t[30] = (scale*cov[30]*keep - t[28]*t[3] - t[29]*t[4]) / t[5]
	t[31] = (scale*cov[31]*keep - t[28]*t[6] - t[29]*t[7] - t[30]*t[8]) / t[9]
	t[32] = (scale*cov[32]*keep - t[28]*t[10] - t[29]*t[11] - t[30]*t[12] - t[31]*t[13]) / t[14]
	t[33] = (scale*cov[33]*keep - t[28]*t[15] - t[29]*t[16] - t[30]*t[17] - t[31]*t[18] - t[32]*t[19]) / t[20]
	t[34] = (scale*cov[34]*keep - t[28]*t[21] - t[29]*t[22] - t[30]*t[23] - t[31]*t[24] - t[32]*t[25] - t[33]*t[26]) / t[27]
	if a = scale*cov[35] + ridge - t[28]*t[28] - t[29]*t[29] - t[30]*t[30] - t[31]*t[31] - t[32]*t[32] - t[33]*t[33] - t[34]*t[34]; a <= 0 {
		a = ridge
	}
	t[35] = math.Sqrt(a)
	// L⁻¹ column by column; each sum starts from 0 as in invertCholesky, which keeps the sign of a zero.
	l[0] = 1 / t[0]
	l[1] = -(0 + t[1]*l[0]) / t[2]
	l[3] = -(0 + t[3]*l[0] + t[4]*l[1]) / t[5]
	l[6] = -(0 + t[6]*l[0] + t[7]*l[1] + t[8]*l[3]) / t[9]
	l[10] = -(0 + t[10]*l[0] + t[11]*l[1] + t[12]*l[3] + t[13]*l[6]) / t[14]
	l[15] = -(0 + t[15]*l[0] + t[16]*l[1] + t[17]*l[3] + t[18]*l[6] + t[19]*l[10]) / t[20]
	l[21] = -(0 + t[21]*l[0] + t[22]*l[1] + t[23]*l[3] + t[24]*l[6] + t[25]*l[10] + t[26]*l[15]) / t[27]
	l[28] = -(0 + t[28]*l[0] + t[29]*l[1] + t[30]*l[3] + t[31]*l[6] + t[32]*l[10] + t[33]*l[15] + t[34]*l[21]) / t[35]
	l[2] = 1 / t[2]
	l[4] = -(0 + t[4]*l[2]) / t[5]
	l[7] = -(0 + t[7]*l[2] + t[8]*l[4]) / t[9]
	l[11] = -(0 + t[11]*l[2] + t[12]*l[4] + t[13]*l[7]) / t[14]
	l[16] = -(0 + t[16]*l[2] + t[17]*l[4] + t[18]*l[7] + t[19]*l[11]) / t[20]
	l[22] = -(0 + t[22]*l[2] + t[23]*l[4] + t[24]*l[7] + t[25]*l[11] + t[26]*l[16]) / t[27]
	l[29] = -(0 + t[29]*l[2] + t[30]*l[4] + t[31]*l[7] + t[32]*l[11] + t[33]*l[16] + t[34]*l[22]) / t[35]
	l[5] = 1 / t[5]
	l[8] = -(0 + t[8]*l[5]) / t[9]
	l[12] = -(0 + t[12]*l[5] + t[13]*l[8]) / t[14]
	l[17] = -(0 + t[17]*l[5] + t[18]*l[8] + t[19]*l[12]) / t[20]
	l[23] = -(0 + t[23]*l[5] + t[24]*l[8] + t[25]*l[12] + t[26]*l[17]) / t[27]
	l[30] = -(0 + t[30]*l[5] + t[31]*l[8] + t[32]*l[12] + t[33]*l[17] + t[34]*l[23]) / t[35]
	l[9] = 1 / t[9]
	l[13] = -(0 + t[13]*l[9]) / t[14]
	l[18] = -(0 + t[18]*l[9] + t[19]*l[13]) / t[20]
	l[24] = -(0 + t[24]*l[9] + t[25]*l[13] + t[26]*l[18]) / t[27]
	l[31] = -(0 + t[31]*l[9] + t[32]*l[13] + t[33]*l[18] + t[34]*l[24]) / t[35]
	l[14] = 1 / t[14]
	l[19] = -(0 + t[19]*l[14]) / t[20]
	l[25] = -(0 + t[25]*l[14] + t[26]*l[19]) / t[27]
	l[32] = -(0 + t[32]*l[14] + t[33]*l[19] + t[34]*l[25]) / t[35]
	l[20] = 1 / t[20]
	l[26] = -(0 + t[26]*l[20]) / t[27]
	l[33] = -(0 + t[33]*l[20] + t[34]*l[26]) / t[35]
	l[27] = 1 / t[27]
	l[34] = -(0 + t[34]*l[27]) / t[35]
	l[35] = 1 / t[35]
}
