# MRPC: per-epoch means over seeds (seed 001 Figure 1). Run: gnuplot mrpc.gp
if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {
  set terminal pngcairo size 1400,1000 font ',10'
} else {
  set terminal png size 1400,1000
}
set output 'mrpc.png'
set datafile missing 'NaN'
set grid
set xlabel 'epoch'
set key outside right top font ',8'
set xtics 1
set offsets 0.2, 0.2, 0, 0
set multiplot layout 2,2 title 'MRPC: mean over seeds per epoch (model use-lite)'
set title 'Train accuracy'
plot 'mrpc.dat' index 0 using 1:2 with linespoints lw 1.5 lc 1 pt 1 dt 1 title 'GR-LoRA R=4', \
     'mrpc.dat' index 1 using 1:2 with linespoints lw 1.5 lc 1 pt 1 dt 2 title 'GR-LoRA R=8'
set title 'Eval accuracy'
plot 'mrpc.dat' index 0 using 1:3 with linespoints lw 1.5 lc 1 pt 1 dt 1 title 'GR-LoRA R=4', \
     'mrpc.dat' index 1 using 1:3 with linespoints lw 1.5 lc 1 pt 1 dt 2 title 'GR-LoRA R=8'
set title 'Eval loss'
plot 'mrpc.dat' index 0 using 1:4 with linespoints lw 1.5 lc 1 pt 1 dt 1 title 'GR-LoRA R=4', \
     'mrpc.dat' index 1 using 1:4 with linespoints lw 1.5 lc 1 pt 1 dt 2 title 'GR-LoRA R=8'
set title 'Generalization gap (train acc - eval acc)'
plot 'mrpc.dat' index 0 using 1:5 with linespoints lw 1.5 lc 1 pt 1 dt 1 title 'GR-LoRA R=4', \
     'mrpc.dat' index 1 using 1:5 with linespoints lw 1.5 lc 1 pt 1 dt 2 title 'GR-LoRA R=8'
unset multiplot
