set terminal svg size 900,500 dynamic
set output 'bench/fast-weight-0.6b.svg'
set title 'TTT fast-weight layer, shape 0.6b (d=1024, f=3072), pthread-skylake-avx512-AMD EPYC'
set logscale x 2
set xlabel 'chunk size C'
set ylabel 'tokens/s'
set y2label 'GFLOP/s'
set ytics nomirror
set y2tics
set key top left
set grid
plot 'bench/fast-weight-0.6b.dat' using 1:3 with linespoints title 'tokens/s', \
     '' using 1:4 axes x1y2 with linespoints title 'layer GFLOP/s', \
     '' using 1:5 axes x1y2 with linespoints title 'reference SGEMM GFLOP/s'
