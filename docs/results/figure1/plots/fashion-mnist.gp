# Fashion-MNIST: per-epoch means over seeds (seed 001 Figure 1). Run: gnuplot fashion-mnist.gp
if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {
  set terminal pngcairo size 1400,1000 font ',10'
} else {
  set terminal png size 1400,1000
}
set output 'fashion-mnist.png'
set datafile missing 'NaN'
set grid
set xlabel 'epoch'
set key outside right top font ',8'
set xtics 1
set offsets 0.2, 0.2, 0, 0
set multiplot layout 2,2 title 'Fashion-MNIST: mean over seeds per epoch (model /work/main/runs/figure1/backbone/last)'
set title 'Train accuracy'
plot 'fashion-mnist.dat' index 0 using 1:2 with linespoints lw 1.5 lc 1 pt 1 dt 1 title 'LoRA R=8', \
     'fashion-mnist.dat' index 1 using 1:2 with linespoints lw 1.5 lc 2 pt 2 dt 1 title 'R-LoRA R=8', \
     'fashion-mnist.dat' index 2 using 1:2 with linespoints lw 1.5 lc 3 pt 3 dt 1 title 'GM-LoRA R=8', \
     'fashion-mnist.dat' index 3 using 1:2 with linespoints lw 1.5 lc 4 pt 4 dt 1 title 'RM-LoRA R=8'
set title 'Eval accuracy'
plot 'fashion-mnist.dat' index 0 using 1:3 with linespoints lw 1.5 lc 1 pt 1 dt 1 title 'LoRA R=8', \
     'fashion-mnist.dat' index 1 using 1:3 with linespoints lw 1.5 lc 2 pt 2 dt 1 title 'R-LoRA R=8', \
     'fashion-mnist.dat' index 2 using 1:3 with linespoints lw 1.5 lc 3 pt 3 dt 1 title 'GM-LoRA R=8', \
     'fashion-mnist.dat' index 3 using 1:3 with linespoints lw 1.5 lc 4 pt 4 dt 1 title 'RM-LoRA R=8'
set title 'Eval loss'
plot 'fashion-mnist.dat' index 0 using 1:4 with linespoints lw 1.5 lc 1 pt 1 dt 1 title 'LoRA R=8', \
     'fashion-mnist.dat' index 1 using 1:4 with linespoints lw 1.5 lc 2 pt 2 dt 1 title 'R-LoRA R=8', \
     'fashion-mnist.dat' index 2 using 1:4 with linespoints lw 1.5 lc 3 pt 3 dt 1 title 'GM-LoRA R=8', \
     'fashion-mnist.dat' index 3 using 1:4 with linespoints lw 1.5 lc 4 pt 4 dt 1 title 'RM-LoRA R=8'
set title 'Generalization gap (train acc - eval acc)'
plot 'fashion-mnist.dat' index 0 using 1:5 with linespoints lw 1.5 lc 1 pt 1 dt 1 title 'LoRA R=8', \
     'fashion-mnist.dat' index 1 using 1:5 with linespoints lw 1.5 lc 2 pt 2 dt 1 title 'R-LoRA R=8', \
     'fashion-mnist.dat' index 2 using 1:5 with linespoints lw 1.5 lc 3 pt 3 dt 1 title 'GM-LoRA R=8', \
     'fashion-mnist.dat' index 3 using 1:5 with linespoints lw 1.5 lc 4 pt 4 dt 1 title 'RM-LoRA R=8'
unset multiplot
