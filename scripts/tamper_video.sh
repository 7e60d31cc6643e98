#!/usr/bin/env bash
# Makes camera-tamper and scene-change test videos from the bundled sample samples/fashion.mp4.
#
#   scripts/tamper_video.sh OUT_DIR
#
# writes
#   OUT_DIR/tamper.mp4         220 s at 12 fps (2640 frames), 640 x 360: the sample looped, with ten labelled
#                              event windows of 4 s separated by 10 s of unaltered video; the first 80 s are
#                              unaltered (warm-up and calibration of a detector)
#   OUT_DIR/tamper.labels.csv  one row per window: kind,start_s,end_s,first_frame,last_frame (frames inclusive,
#                              0-based, frame i at i/12 s)
#   OUT_DIR/normal.mp4         the sample looped 8 times without re-encoding: 4000 frames, 333 s of normal video
#
# Window kinds, in order:
#   black        lens covered: the whole frame black
#   dim          lights dimmed: luma x 0.3
#   blur         defocus: Gaussian blur, sigma 16 px (about 1.2 px of the bundled model's 28 x 28 input)
#   blur_strong  strong defocus: Gaussian blur, sigma 40 px (about 3 px at 28 x 28)
#   shift        camera moved: the picture shifted 200 px left and 60 px up, the uncovered border dark gray
#   crop         camera moved (zoomed in): the centre half of the picture scaled up to the whole frame
#   freeze       frozen frame: the first frame of the window repeated for the whole window
#   scene        a different scene at the same brightness: the picture rotated 90 degrees and mirrored
#   noise        sensor noise: strong temporal noise added to the picture
#   snow         a different scene at the same brightness: uniform noise of the sample's mean luma (about 22)
#
# Deterministic: the same input and ffmpeg/libx264 build give the same bytes (single-threaded encoder, bitexact
# flags, no metadata). Needs ffmpeg with libx264 (Debian 12: ffmpeg 5.1).
set -euo pipefail

if [[ $# -ne 1 ]]; then
	echo "usage: $0 OUT_DIR" >&2
	exit 2
fi
out=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$here/../samples/fashion.mp4
if [[ ! -r $src ]]; then
	echo "$0: sample video $src not found" >&2
	exit 1
fi
command -v ffmpeg >/dev/null || { echo "$0: ffmpeg not found" >&2; exit 1; }
mkdir -p "$out"

fps=12
lead=80   # seconds of normal video before the first window: warm-up (20 s) and calibration (60 s)
win=4     # seconds per window
gap=10    # seconds of normal video after each window
kinds=(black dim blur blur_strong shift crop freeze scene noise snow)
total=$((lead + ${#kinds[@]} * (win + gap)))

labels=$out/tamper.labels.csv
echo "kind,start_s,end_s,first_frame,last_frame" >"$labels"
declare -A start
t=$lead
for k in "${kinds[@]}"; do
	start[$k]=$t
	echo "$k,$t,$((t + win)),$((t * fps)),$(((t + win) * fps - 1))" >>"$labels"
	t=$((t + win + gap))
done

# between(t,a,b) is inclusive at both ends; frame times are multiples of 1/12 s, so end the window half a frame
# before b to keep exactly win*fps frames in it.
on() { echo "between(t,$1,$(($1 + win))-0.5/$fps)"; }

ff=${start[freeze]}
filter=""
filter+="[0:v]setpts=N/($fps*TB),format=gray,split=6[base][sh][fz][ro][cr][sn];"
filter+="[cr]crop=iw/2:ih/2:iw/4:ih/4,scale=640:360[cropped];"
filter+="[sn]geq=lum='44*random(0)'[snowy];"
filter+="[sh]crop=iw-200:ih-60:200:60,pad=iw+200:ih+60:0:0:color=0x181818[shifted];"
filter+="[fz]trim=start_frame=$((ff * fps)):end_frame=$((ff * fps + 1)),loop=loop=$((win * fps - 1)):size=1:start=0,setpts=N/($fps*TB)+$ff/TB[still];"
filter+="[ro]rotate=PI/2:fillcolor=0x101010,hflip[rotated];"
filter+="[base]drawbox=x=0:y=0:w=iw:h=ih:color=black:t=fill:enable='$(on "${start[black]}")',"
filter+="lutyuv=y=val*0.3:enable='$(on "${start[dim]}")',"
filter+="gblur=sigma=16:enable='$(on "${start[blur]}")',"
filter+="gblur=sigma=40:enable='$(on "${start[blur_strong]}")',"
filter+="noise=alls=60:allf=t:enable='$(on "${start[noise]}")'[b1];"
filter+="[b1][shifted]overlay=enable='$(on "${start[shift]}")'[b2];"
filter+="[b2][still]overlay=eof_action=pass:enable='$(on "$ff")'[b3];"
filter+="[b3][rotated]overlay=enable='$(on "${start[scene]}")'[b4];"
filter+="[b4][cropped]overlay=enable='$(on "${start[crop]}")'[b5];"
filter+="[b5][snowy]overlay=enable='$(on "${start[snow]}")',format=yuv420p[v]"

enc=(-c:v libx264 -preset medium -crf 18 -g 24 -bf 0 -threads 1 -pix_fmt yuv420p
	-fflags +bitexact -flags:v +bitexact -map_metadata -1 -an)

ffmpeg -hide_banner -loglevel error -y -stream_loop $(((total * fps + 499) / 500 - 1)) -i "$src" -filter_complex "$filter" -map "[v]" \
	-frames:v $((total * fps)) -r $fps "${enc[@]}" "$out/tamper.mp4"

ffmpeg -hide_banner -loglevel error -y -stream_loop 7 -i "$src" -c copy -an -map_metadata -1 \
	-fflags +bitexact "$out/normal.mp4"

echo "wrote $out/tamper.mp4 ($((total * fps)) frames, $total s), $labels, $out/normal.mp4"
