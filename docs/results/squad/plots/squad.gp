# SQuAD v1.1: per-epoch means over seeds (seed 001 Figure 1). Run: gnuplot squad.gp
if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {
  set terminal pngcairo size 1400,1000 font ',10'
} else {
  set terminal png size 1400,1000
}
set output 'squad.png'
set datafile missing 'NaN'
set grid
set xlabel 'epoch'
set key outside right top font ',8'
set xtics 1
set offsets 0.2, 0.2, 0, 0
set multiplot layout 2,2 title 'SQuAD v1.1: mean over seeds per epoch (model use-lite)'
set title 'Train accuracy'
plot 'squad.dat' index 0 using 1:2 with linespoints lw 1.5 lc 1 pt 1 dt 1 title 'LoRA R=8', \
     'squad.dat' index 1 using 1:2 with linespoints lw 1.5 lc 2 pt 2 dt 1 title 'GR-LoRA R=8', \
     'squad.dat' index 2 using 1:2 with linespoints lw 1.5 lc 3 pt 3 dt 1 title 'R-LoRA R=8', \
     'squad.dat' index 3 using 1:2 with linespoints lw 1.5 lc 4 pt 4 dt 1 title 'GM-LoRA R=8', \
     'squad.dat' index 4 using 1:2 with linespoints lw 1.5 lc 5 pt 5 dt 1 title 'RM-LoRA R=8', \
     'squad.dat' index 5 using 1:2 with linespoints lw 1.5 lc 6 pt 6 dt 1 title 'AdaLoRA R=8', \
     'squad.dat' index 6 using 1:2 with linespoints lw 1.5 lc 7 pt 7 dt 1 title 'SoRA R=8'
set title 'Eval accuracy'
plot 'squad.dat' index 0 using 1:3 with linespoints lw 1.5 lc 1 pt 1 dt 1 title 'LoRA R=8', \
     'squad.dat' index 1 using 1:3 with linespoints lw 1.5 lc 2 pt 2 dt 1 title 'GR-LoRA R=8', \
     'squad.dat' index 2 using 1:3 with linespoints lw 1.5 lc 3 pt 3 dt 1 title 'R-LoRA R=8', \
     'squad.dat' index 3 using 1:3 with linespoints lw 1.5 lc 4 pt 4 dt 1 title 'GM-LoRA R=8', \
     'squad.dat' index 4 using 1:3 with linespoints lw 1.5 lc 5 pt 5 dt 1 title 'RM-LoRA R=8', \
     'squad.dat' index 5 using 1:3 with linespoints lw 1.5 lc 6 pt 6 dt 1 title 'AdaLoRA R=8', \
     'squad.dat' index 6 using 1:3 with linespoints lw 1.5 lc 7 pt 7 dt 1 title 'SoRA R=8'
set title 'Eval loss'
plot 'squad.dat' index 0 using 1:4 with linespoints lw 1.5 lc 1 pt 1 dt 1 title 'LoRA R=8', \
     'squad.dat' index 1 using 1:4 with linespoints lw 1.5 lc 2 pt 2 dt 1 title 'GR-LoRA R=8', \
     'squad.dat' index 2 using 1:4 with linespoints lw 1.5 lc 3 pt 3 dt 1 title 'R-LoRA R=8', \
     'squad.dat' index 3 using 1:4 with linespoints lw 1.5 lc 4 pt 4 dt 1 title 'GM-LoRA R=8', \
     'squad.dat' index 4 using 1:4 with linespoints lw 1.5 lc 5 pt 5 dt 1 title 'RM-LoRA R=8', \
     'squad.dat' index 5 using 1:4 with linespoints lw 1.5 lc 6 pt 6 dt 1 title 'AdaLoRA R=8', \
     'squad.dat' index 6 using 1:4 with linespoints lw 1.5 lc 7 pt 7 dt 1 title 'SoRA R=8'
set title 'Generalization gap (train acc - eval acc)'
plot 'squad.dat' index 0 using 1:5 with linespoints lw 1.5 lc 1 pt 1 dt 1 title 'LoRA R=8', \
     'squad.dat' index 1 using 1:5 with linespoints lw 1.5 lc 2 pt 2 dt 1 title 'GR-LoRA R=8', \
     'squad.dat' index 2 using 1:5 with linespoints lw 1.5 lc 3 pt 3 dt 1 title 'R-LoRA R=8', \
     'squad.dat' index 3 using 1:5 with linespoints lw 1.5 lc 4 pt 4 dt 1 title 'GM-LoRA R=8', \
     'squad.dat' index 4 using 1:5 with linespoints lw 1.5 lc 5 pt 5 dt 1 title 'RM-LoRA R=8', \
     'squad.dat' index 5 using 1:5 with linespoints lw 1.5 lc 6 pt 6 dt 1 title 'AdaLoRA R=8', \
     'squad.dat' index 6 using 1:5 with linespoints lw 1.5 lc 7 pt 7 dt 1 title 'SoRA R=8'
unset multiplot
