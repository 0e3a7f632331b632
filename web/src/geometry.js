// 4x4 affines (row-major nested arrays, voxel index -> RAS+ mm, as Findings.study.affine)

export function mulAffine(a, v) {
  return [0, 1, 2].map((i) => a[i][0] * v[0] + a[i][1] * v[1] + a[i][2] * v[2] + a[i][3]);
}

export function inverseAffine(a) {
  const [[m00, m01, m02], [m10, m11, m12], [m20, m21, m22]] = a;
  const c00 = m11 * m22 - m12 * m21, c01 = m02 * m21 - m01 * m22, c02 = m01 * m12 - m02 * m11;
  const c10 = m12 * m20 - m10 * m22, c11 = m00 * m22 - m02 * m20, c12 = m02 * m10 - m00 * m12;
  const c20 = m10 * m21 - m11 * m20, c21 = m01 * m20 - m00 * m21, c22 = m00 * m11 - m01 * m10;
  const det = m00 * c00 + m01 * c10 + m02 * c20;
  const r = [[c00, c01, c02], [c10, c11, c12], [c20, c21, c22]].map((row) => row.map((x) => x / det));
  const t = [a[0][3], a[1][3], a[2][3]];
  return r.map((row) => [...row, -(row[0] * t[0] + row[1] * t[1] + row[2] * t[2])]).concat([[0, 0, 0, 1]]);
}
